import sys

from laom.cli import main

sys.exit(main())
