"""``python -m tools.gpu_rehearsal``."""

import sys

from tools.gpu_rehearsal.cli import main

sys.exit(main())
