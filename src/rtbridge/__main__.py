from rtbridge.cli.main import main

raise SystemExit(main())
