import sys

from services.demo.running import main

sys.exit(main())
