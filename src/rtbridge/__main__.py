from rtbridge.cli import main

raise SystemExit(main())
