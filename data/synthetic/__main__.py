"""``python -m data.synthetic``: generate the synthetic set (see ``data.synthetic.dataset``)."""
import sys

from data.synthetic.dataset import main

sys.exit(main())
