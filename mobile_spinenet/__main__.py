import sys

from mobile_spinenet.cli import main

sys.exit(main())
