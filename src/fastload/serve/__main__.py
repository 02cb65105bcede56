from fastload.serve.server import main

raise SystemExit(main())
