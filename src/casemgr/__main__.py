import sys

from casemgr.cli import main

sys.exit(main())
