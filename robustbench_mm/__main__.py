import sys

from robustbench_mm.cli import main

sys.exit(main())
