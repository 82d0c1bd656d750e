"""``python -m llmcompiler_graph.bench``."""

import sys

from .cli import main

sys.exit(main())
