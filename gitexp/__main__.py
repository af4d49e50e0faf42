import sys

from gitexp.cli.main import main

sys.exit(main())
