import sys

from quantsweep.cli import main

sys.exit(main())
