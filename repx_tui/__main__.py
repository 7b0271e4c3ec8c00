from repx_tui.cli import main

raise SystemExit(main())
