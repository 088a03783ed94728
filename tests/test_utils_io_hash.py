"""The model-file hash cache (utils.io.folder_hash): a changed file is always hashed again."""

import json
import os
import shutil

from utils.io import folder_hash, sha256_file


def _folder(tmp_path, payload: bytes):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "model.safetensors").write_bytes(payload)
    return folder


def test_same_size_copy_with_old_mtime_is_hashed_again(tmp_path, monkeypatch):
    # `cp -p` / `rsync -t` keep the mtime: a same-size file with other content must still change the
    # hash (the run record's model hash, and run_benchmark's resume check, rely on it)
    monkeypatch.setenv("AHA_CACHE", str(tmp_path / "cache"))
    folder = _folder(tmp_path, b"A" * 4096)
    first = folder_hash(folder)
    st = os.stat(folder / "model.safetensors")
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"B" * 4096)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    shutil.copy2(other, folder / "model.safetensors")  # cp -p: same size, same mtime
    assert os.stat(folder / "model.safetensors").st_mtime_ns == st.st_mtime_ns
    second = folder_hash(folder)
    assert second != first
    # and the cache holds one entry for the file, with the new content's digest
    cache = json.loads((tmp_path / "cache" / "file_hashes.json").read_text())
    mine = [k for k in cache if k.startswith(str((folder / "model.safetensors").resolve()) + "|")]
    assert len(mine) == 1 and cache[mine[0]] == sha256_file(folder / "model.safetensors")


def test_unchanged_file_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AHA_CACHE", str(tmp_path / "cache"))
    folder = _folder(tmp_path, b"C" * 1024)
    first = folder_hash(folder)
    calls = []
    import utils.io as io_mod

    real = io_mod.sha256_file
    monkeypatch.setattr(io_mod, "sha256_file", lambda p: calls.append(p) or real(p))
    assert folder_hash(folder) == first
    assert calls == []


def test_keys_of_the_previous_format_are_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("AHA_CACHE", str(tmp_path / "cache"))
    folder = _folder(tmp_path, b"D" * 512)
    path = str((folder / "model.safetensors").resolve())
    st = os.stat(path)
    (tmp_path / "cache").mkdir()
    old_key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    (tmp_path / "cache" / "file_hashes.json").write_text(json.dumps({old_key: "0" * 64, "/elsewhere|1|2": "f" * 64}))
    folder_hash(folder)  # an old-format key is not trusted (no inode / ctime): hashed again
    cache = json.loads((tmp_path / "cache" / "file_hashes.json").read_text())
    assert old_key not in cache and "/elsewhere|1|2" in cache
    assert [v for k, v in cache.items() if k.startswith(path + "|")] == [sha256_file(path)]
