"""Prompt text shared by the annotation converters, training data and the inference drivers.

Everything here is plain data plus a few pure functions (no torch, no I/O), so the benchmark
converters (``datasets/convert.py``) and the streaming drivers import the same strings.

Template choice is seeded per item (``choose_template(seed, item_id)``): the reference picked a
random template with the unseeded global RNG, so its "average over 5 runs" could not be
reproduced (reference spec §9 item 10). Here a (seed, item id) pair always gives the same
template, independent of item order, of other items and of the global RNG state.
"""
from __future__ import annotations

import hashlib
import random

# The reference's default system prompt (kept verbatim for the released weights); defined with
# the chat template so the model layer does not import data/.
from models.chat import DEFAULT_SYSTEM_PROMPT as SYSTEM_PROMPT  # noqa: E402, F401 (re-exported)

# Grounding-style query templates; "{query}" is replaced by the sentence / title. The first two
# are the bare query, as in the reference's 12-template list, so a random draw returns the raw
# query one time in six.
QUERY_TEMPLATES: tuple[str, ...] = (
    "{query}",
    "{query}",
    "Find the moments in the video where this happens: {query}",
    "Tell me when the following occurs: {query}",
    "Which parts of the video show this? {query}",
    "Let me know as soon as you see: {query}",
    "Highlight the segments that match this description: {query}",
    "I am looking for this in the video: {query}",
    "Point out when the video shows: {query}",
    "Keep an eye out for the following: {query}",
    "Spot the moments relevant to: {query}",
    "When does this happen in the video? {query}",
)

# Dense-captioning (YouCook2 / COIN / Shot2Story) user instructions. The first is the example the
# reference documents; the others are this project's own wording of the same request.
DVC_INSTRUCTIONS: tuple[str, ...] = (
    "Please concisely narrate the video in real time.",
    "Describe what is happening in the video as it plays.",
    "Narrate each new step of the video briefly, as soon as it happens.",
    "Give a short running commentary on the video.",
    "Tell me what the person is doing whenever something new starts.",
    "Summarise each step of the video in one sentence as it unfolds.",
    "Caption the video live, one short sentence per event.",
    "Follow the video and briefly describe every new action.",
    "As the video streams, report each step concisely.",
    "Watch the video and narrate the key events in real time.",
)

# The reference's wording (aiden200/Aha- test/inference.py ``query_templates``, the same 12 as MMDuet's
# data/grounding.py; data/dvc.py ``instructions``), which the released weights were trained and
# evaluated with: the HIHD queries are titles in these templates, the dense-captioning turns these
# instructions. Kept verbatim (typos included) because they are the model's input distribution;
# ``%s`` is written ``{query}`` here.
REFERENCE_QUERY_TEMPLATES: tuple[str, ...] = (
    "{query}",
    "{query}",
    "What segment of the video addresses the topic '{query}'?",
    "At what timestamp can I find information about '{query}' in the video?",
    "Can you highlight the section of the video that pertains to '{query}'?",
    "Which moments in the video discuss '{query}' in detail?",
    "Identify the parts that mention '{query}'.",
    "Where in the video is '{query}' demonstrated or explained?",
    "What parts are relevant to the concept of '{query}'?",
    "Which clips in the video relate to the query '{query}'?",
    "Can you point out the video segments that cover '{query}'?",
    "What are the key timestamps in the video for the topic '{query}'?",
)

REFERENCE_DVC_INSTRUCTIONS: tuple[str, ...] = (
    "Please concisely narrate the video in real time.",
    "Help me to illustrate my view in short.",
    "Please simply describe what do you see.",
    "Continuously answer what you observed with simple text.",
    "Do concise real-time narration.",
    "Hey assistant, do you know the current video content? Reply me concisely.",
    "Simply interpret the scene for me.",
    "What can you tell me about? Be concise.",
    "Use simple text to explain what is shown in front of me.",
    "What is the action now? Please response in short.",
)

# Template sets a spec may name (``reference:random``, ``project:fixed:3``); a spec without a set
# (``random``, ``fixed:N``) means ``project``, the wording this project's tiny model and training
# data use. The benchmark converter's command line defaults to ``reference`` (the released weights').
TEMPLATE_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "project": (QUERY_TEMPLATES, DVC_INSTRUCTIONS),
    "reference": (REFERENCE_QUERY_TEMPLATES, REFERENCE_DVC_INSTRUCTIONS),
}
DEFAULT_TEMPLATE_SET = "project"

# TVSum category codes -> the dataset's official category names.
TVSUM_CATEGORY_NAMES: dict[str, str] = {
    "VT": "Changing Vehicle Tire",
    "VU": "Getting Vehicle Unstuck",
    "GA": "Grooming an Animal",
    "MS": "Making Sandwich",
    "PK": "Parkour",
    "PR": "Parade",
    "FM": "Flash Mob Gathering",
    "BK": "Bee Keeping",
    "BT": "Attempting Bike Tricks",
    "DS": "Dog Show",
}

# "Ambiguous" prompt ablation: a deliberately vague description per video (this project's own
# wording), so the query hints at the topic without naming the event.
TVSUM_AMBIGUOUS_TITLES: dict[str, str] = {
    "akI8YFjEmUw": "Vehicle Technology",
    "J0nA4VgnoCo": "Car Trouble",
    "kLxoNp-UchI": "A Pet Story",
    "WxtbjNsCQ8A": "Working With Insects",
    "HT5vyqe0Xaw": "An Afternoon Outdoors",
    "gzDbaEs1Rlg": "Car Maintenance Advice",
    "EE-bNr36nyA": "Dealing With Pests",
    "eQu1rNs0an0": "Cycling Skills",
    "oDXZc0tZe04": "Insects in Nature",
    "Hl-__g2gn_A": "Preparing Food",
    "WG0MBPpPC6I": "A Recipe",
    "GsAD1KT1xo8": "Outdoor Training",
    "xxdtq8mxegs": "Pet Care Tips",
    "NyBmCxDoHJU": "Animal Event",
    "Bhxk-O1Y7Ho": "A Day at Work",
    "_xMr-HKMfVA": "Public Performance",
    "i3wAGJaaktw": "Pet Services",
    "JKpqYvAdIsw": "Campus Event",
    "byxOvuiIJV0": "Group Dance",
    "RBCABdttQmI": "School Tradition",
    "XzYM3PfTM4w": "Vehicle Advice",
    "0tmA_C6XwfM": "Animal Care",
    "qqR6AEXwxoQ": "Riding Tutorial",
    "vdmoEJ5YbrQ": "Life on a Farm",
    "LRw_obCPUt0": "Restaurant Kitchen",
    "uGu_10sucQo": "A Seasonal Hobby",
    "4wU_LUjG5Ic": "City Event",
    "98MoyGZKHXc": "Product Guide",
    "XkqCExn6_Us": "Running Through the City",
    "Se3oxnaPsz0": "Local News Story",
    "sTEELN-vY30": "Transport Accident",
    "JgHubY5Vw3Y": "Bicycle Tips",
    "3eYKfiOEJNs": "Animals in the City",
    "xwqBXPGE9pQ": "New Invention",
    "VuWGsYPqAX8": "Public Gathering",
    "jcoYJXDG9sw": "Pet Health",
    "z_6gVvQb2d0": "Sports Celebration",
    "-esJrBWj2d8": "Pet Experiment",
    "xmEERLqJ2kU": "School Surprise",
    "b626MiF1ew4": "Urban Sport",
    "EYqVtI9YWJA": "Live Show",
    "iVt07TCkFM0": "Trick Tutorial",
    "fWutDQy1nnY": "Street Festival",
    "37rzWOQsNIw": "Local Eatery",
    "91IHQYk1IQM": "Holiday Celebration",
    "cjibtmSLxQ4": "Athlete Profile",
    "PJrm840pAUI": "Youth Meetup",
    "Yi4Ij2NM7U4": "Budget Cooking",
    "AwmHb44_ouw": "Farm Equipment Work",
    "E11zDS9XGzg": "Competition Day",
}

# The reference's own ablation titles (aiden200/Aha- test/tvsum/tvsum_tasks.py, verbatim): the paper's
# ambiguous-prompt evaluation (hard-coded at its HEAD) and its unrelated-prompt rebuttal run.
# ``--prompt ambiguous_reference``: video -> its ambiguous title.
REFERENCE_TVSUM_AMBIGUOUS_TITLES: dict[str, str] = {
    'AwmHb44_ouw': 'Vehicle Maintenance',
    '98MoyGZKHXc': 'Fixing a Vehicle Part',
    'J0nA4VgnoCo': 'Automotive Problem',
    'gzDbaEs1Rlg': 'Repairing a Wheel',
    'XzYM3PfTM4w': 'Checking a Vehicle',
    'HT5vyqe0Xaw': 'Vehicle Issue',
    'sTEELN-vY30': 'Transportation Incident',
    'vdmoEJ5YbrQ': 'Driving Problem',
    'xwqBXPGE9pQ': 'A Vehicle in Motion',
    'akI8YFjEmUw': 'Environmental Technology',
    'i3wAGJaaktw': 'Animal Care',
    'Bhxk-O1Y7Ho': 'Taking Care of a Pet',
    '0tmA_C6XwfM': 'Animal Grooming',
    '3eYKfiOEJNs': 'Pet Services',
    'xxdtq8mxegs': 'Cleaning an Animal',
    'WG0MBPpPC6I': 'Preparing a Meal',
    'Hl-__g2gn_A': 'Making Lunch',
    'Yi4Ij2NM7U4': 'Cooking Food',
    '37rzWOQsNIw': 'Food Preparation',
    'LRw_obCPUt0': 'Kitchen Activity',
    'cjibtmSLxQ4': 'Urban Acrobatics',
    'b626MiF1ew4': 'City Athletics',
    'XkqCExn6_Us': 'Person in Motion',
    'GsAD1KT1xo8': 'Athletic Training',
    'PJrm840pAUI': 'Physical Activity',
    '91IHQYk1IQM': 'Street Celebration',
    'RBCABdttQmI': 'Public Procession',
    'z_6gVvQb2d0': 'Group Event',
    'fWutDQy1nnY': 'Community Gathering',
    '4wU_LUjG5Ic': 'Public Spectacle',
    'VuWGsYPqAX8': 'Organized Gathering',
    'JKpqYvAdIsw': 'Group Performance',
    'xmEERLqJ2kU': 'Public Dance',
    'byxOvuiIJV0': 'Coordinated Event',
    '_xMr-HKMfVA': 'Surprise Performance',
    'WxtbjNsCQ8A': 'Interacting with Insects',
    'uGu_10sucQo': 'Handling Wildlife',
    'EE-bNr36nyA': 'Outdoor Task',
    'Se3oxnaPsz0': 'Animal Interaction',
    'oDXZc0tZe04': 'Observing Nature',
    'qqR6AEXwxoQ': 'Performing a Stunt',
    'EYqVtI9YWJA': 'Vehicle Tricks',
    'eQu1rNs0an0': 'Using a Bicycle',
    'JgHubY5Vw3Y': 'Bicycle Security',
    'iVt07TCkFM0': 'Bike Maneuvers',
    'E11zDS9XGzg': 'Animal Competition',
    'NyBmCxDoHJU': 'Pet Event',
    'kLxoNp-UchI': 'A Story About a Pet',
    'jcoYJXDG9sw': 'Animal Health',
    '-esJrBWj2d8': 'Domestic Animals',
}

# ``--prompt unrelated_reference``: video -> (the video whose title is borrowed, that title as the
# reference wrote it, quotes included).
REFERENCE_TVSUM_UNRELATED_TITLES: dict[str, tuple[str, str]] = {
    'AwmHb44_ouw': ('WxtbjNsCQ8A', 'Beekeeping101.mov'),
    '98MoyGZKHXc': ('cjibtmSLxQ4', 'David Belle | Fondateur du parkour | Reportage de TF1'),
    'J0nA4VgnoCo': ('-esJrBWj2d8', 'Will A Cat Eat Dog Food?'),
    'gzDbaEs1Rlg': ('91IHQYk1IQM', 'Chinese New Year Parade 2012 New York City Chinatown'),
    'XzYM3PfTM4w': ('xmEERLqJ2kU', 'Bluffton Teachers Flash Mob Dance (A Staff that Cares About Their Students)'),
    'HT5vyqe0Xaw': ('iVt07TCkFM0', 'Pure Fix TV: How to Wheelie'),
    'sTEELN-vY30': ('Bhxk-O1Y7Ho', '"Vlog #509 I\'M A PUPPY DOG GROOMER! September 13, 2014"'),
    'vdmoEJ5YbrQ': ('WG0MBPpPC6I', 'Mexican Fried Chicken Sandwich Recipe'),
    'xwqBXPGE9pQ': ('4wU_LUjG5Ic', 'Southend-on-Sea and Kortrijk Bike Friendly Cities Parades'),
    'akI8YFjEmUw': ('EE-bNr36nyA', 'Paper Wasp Removal | From the Ground Up'),
    'i3wAGJaaktw': ('XzYM3PfTM4w', 'When to Replace Your Tires GMC'),
    'Bhxk-O1Y7Ho': ('LRw_obCPUt0', "GoogaMooga Sneak Peek Joseph Leonard's Fried Chicken Sandwich cooking video"),
    '0tmA_C6XwfM': ('GsAD1KT1xo8', 'Parkour Camp Leipzig'),
    '3eYKfiOEJNs': ('eQu1rNs0an0', 'How to stop your Fixie'),
    'xxdtq8mxegs': ('sTEELN-vY30', 'BBC - Train crash 2013'),
    'WG0MBPpPC6I': ('E11zDS9XGzg', 'German Shepherd Dog Show (KCI) | DoHangout'),
    'Hl-__g2gn_A': ('xwqBXPGE9pQ', 'Smart Electric Vehicle Balances on Two Wheels'),
    'Yi4Ij2NM7U4': ('3eYKfiOEJNs', 'Dog Grooming in Buenos Aires'),
    '37rzWOQsNIw': ('JgHubY5Vw3Y', 'How to lock your bike. The RIGHT way!'),
    'LRw_obCPUt0': ('XkqCExn6_Us', 'Singapore Parkour Free Running | JC Boy Late for School'),
    'cjibtmSLxQ4': ('jcoYJXDG9sw', 'TODAY- Obie the obese dog works toward weight loss'),
    'b626MiF1ew4': ('_xMr-HKMfVA', 'CASACL - Flashmob in Copenhagen underground - Peer Gynt'),
    'XkqCExn6_Us': ('NyBmCxDoHJU', 'The Dog Show HD 720p'),
    'GsAD1KT1xo8': ('HT5vyqe0Xaw', '"The stuck truck of Mark, The rut that filled an afternoon."'),
    'PJrm840pAUI': ('oDXZc0tZe04', 'Apis Mellifera in a Vertical Log Hive'),
    '91IHQYk1IQM': ('98MoyGZKHXc', 'How to use a tyre repair kit - Which? guide'),
    'RBCABdttQmI': ('vdmoEJ5YbrQ', '#453 girl gets van stuck in the back fourty [Davidsfarm]'),
    'z_6gVvQb2d0': ('EYqVtI9YWJA', 'Smage Bros. Motorcycle Stunt Show'),
    'fWutDQy1nnY': ('0tmA_C6XwfM', 'Nail clipper Gloria Pets professional grooming'),
    '4wU_LUjG5Ic': ('37rzWOQsNIw', 'Saigon Sandwich - Vietnamese Sandwiches in San Francisco CA'),
    'VuWGsYPqAX8': ('kLxoNp-UchI', "Oliver's Show - Dog's tale"),
    'JKpqYvAdIsw': ('J0nA4VgnoCo', '#0001: FLAT TIRE'),
    'xmEERLqJ2kU': ('akI8YFjEmUw', 'Electric cars making earth more green'),
    'byxOvuiIJV0': ('uGu_10sucQo', 'A Year of Beekeeping'),
    '_xMr-HKMfVA': ('Hl-__g2gn_A', 'Reuben Sandwich with Corned Beef & Sauerkraut'),
    'WxtbjNsCQ8A': ('fWutDQy1nnY', 'Chinatown Parade'),
    'uGu_10sucQo': ('z_6gVvQb2d0', 'LA Kings Stanley Cup South Bay Parade 2014'),
    'EE-bNr36nyA': ('xxdtq8mxegs', "How to Clean Your Dog's Ears - Vetoquinol USA"),
    'Se3oxnaPsz0': ('b626MiF1ew4', 'Charlotte Parkour | Charlotte Video Project'),
    'oDXZc0tZe04': ('gzDbaEs1Rlg', 'ŠKODA Tips How to Repair Your Tyre'),
    'qqR6AEXwxoQ': ('RBCABdttQmI', '2013 Alumnae Parade & Laurel Chain Ceremony'),
    'EYqVtI9YWJA': ('Yi4Ij2NM7U4', "Poor Man's Meals: Spicy Sausage Sandwich"),
    'eQu1rNs0an0': ('JKpqYvAdIsw', 'ICC World Twenty20 Bangladesh 2014 Flash Mob - Pabna University of Science & Technology ( PUST )'),
    'JgHubY5Vw3Y': ('i3wAGJaaktw', '"Pet Joy Spa Grooming Services | Brentwood, CA (310) 471-0088"'),
    'iVt07TCkFM0': ('PJrm840pAUI', 'Vivencias: Jam Parkour Viña del Mar 2012'),
    'E11zDS9XGzg': ('AwmHb44_ouw', '#1306 How to change tires for off road vehicles [Davidsfarm]'),
    'NyBmCxDoHJU': ('VuWGsYPqAX8', '"Flash mob protest for Syria | Sydney, Australia, May 2012 | #Silenceisbetrayal"'),
    'kLxoNp-UchI': ('Se3oxnaPsz0', '9/15/11 Killer Bees Kill 1000-lb Hog in Bisbee AZ'),
    'jcoYJXDG9sw': ('qqR6AEXwxoQ', 'Motocross Tips & Tricks : How to Whip a Motocross Bike'),
    '-esJrBWj2d8': ('byxOvuiIJV0', '"ICC World Twenty 20 Bangladesh 2014, Flash Mob - UITS, Chittagong (Official)"'),
}

# Fallback for a video id missing from the table above (e.g. a re-crawled info file).
TVSUM_CATEGORY_AMBIGUOUS: dict[str, str] = {
    "VT": "Vehicle Work",
    "VU": "Vehicle Trouble",
    "GA": "Looking After Animals",
    "MS": "Cooking",
    "PK": "Outdoor Sport",
    "PR": "Street Event",
    "FM": "Crowd Event",
    "BK": "Insect Hobby",
    "BT": "Bike Riding",
    "DS": "Animal Event",
}

TEMPLATE_MODES = ("random", "fixed", "none")


def item_rng(seed: int, item_id: str, purpose: str = "template") -> random.Random:
    """A private RNG for one (seed, item, purpose): order-independent and untouched by the global RNG.

    The state comes from SHA-256 of the three parts, so it is stable across Python processes
    (``hash()`` of a str is salted per process and must not be used here).
    """
    digest = hashlib.sha256(f"{int(seed)}\x1f{purpose}\x1f{item_id}".encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def choose_template(seed: int, item_id: str, n_templates: int = len(QUERY_TEMPLATES)) -> int:
    """Index of the query template for ``item_id`` under ``seed`` (deterministic, uniform)."""
    if n_templates <= 0:
        raise ValueError(f"n_templates must be positive, got {n_templates}")
    return item_rng(seed, item_id, "template").randrange(n_templates)


def choose_instruction(seed: int, item_id: str, n_instructions: int = len(DVC_INSTRUCTIONS)) -> int:
    """Index into the dense-captioning instructions for ``item_id`` under ``seed``."""
    return item_rng(seed, item_id, "instruction").randrange(n_instructions)


def parse_template_spec(spec: str) -> tuple[str, str, int | None]:
    """``[SET:]random`` / ``[SET:]fixed:N`` / ``none`` -> (set, mode, N or None); SET is one of
    TEMPLATE_SETS (default ``project``)."""
    spec = spec.strip()
    name, rest = DEFAULT_TEMPLATE_SET, spec
    head, sep, tail = spec.partition(":")
    if sep and head in TEMPLATE_SETS:
        name, rest = head, tail
    if rest in ("random", "none"):
        return name, rest, None
    if rest.startswith("fixed:"):
        try:
            return name, "fixed", int(rest[len("fixed:"):])
        except ValueError:
            pass
    raise ValueError(f"template spec must be [SET:]random, [SET:]fixed:N or none (SET: {' | '.join(TEMPLATE_SETS)}), "
                     f"got {spec!r}")


def parse_template_mode(spec: str) -> tuple[str, int | None]:
    """``"random"`` / ``"none"`` / ``"fixed:N"`` (optionally ``SET:``-prefixed) -> (mode, N or None)."""
    _, mode, fixed = parse_template_spec(spec)
    return mode, fixed


def template_set_of(spec: str) -> str:
    """The template set a spec draws from (``project`` when it names none)."""
    return parse_template_spec(spec)[0]


def apply_template(template_id: int, text: str, templates: tuple[str, ...] = QUERY_TEMPLATES) -> str:
    """Fill template ``template_id`` with ``text`` (plain replace: braces in ``text`` are harmless)."""
    if not 0 <= template_id < len(templates):
        raise ValueError(f"template id {template_id} out of range 0..{len(templates) - 1}")
    return templates[template_id].replace("{query}", text)


def render_query(
    text: str, spec: str, seed: int, item_id: str, templates: tuple[str, ...] | None = None
) -> tuple[str, int | None]:
    """Wrap ``text`` according to a template spec; returns (query, template_id or None). The
    templates are the spec's set unless given."""
    name, mode, fixed = parse_template_spec(spec)
    if templates is None:
        templates = TEMPLATE_SETS[name][0]
    if mode == "none":
        return text, None
    if mode == "fixed":
        template_id = fixed
    else:
        template_id = choose_template(seed, item_id, len(templates))
    return apply_template(template_id, text, templates), template_id


def pick_instruction(spec: str, seed: int, item_id: str) -> tuple[str, int]:
    """The dense-captioning instruction for an item: seeded random, or ``fixed:N``."""
    name, mode, fixed = parse_template_spec(spec)
    instructions = TEMPLATE_SETS[name][1]
    if mode == "none":
        raise ValueError("dense captioning needs an instruction: use --template random or fixed:N")
    index = fixed if mode == "fixed" else choose_instruction(seed, item_id, len(instructions))
    if not 0 <= index < len(instructions):
        raise ValueError(f"instruction id {index} out of range 0..{len(instructions) - 1}")
    return instructions[index], index
