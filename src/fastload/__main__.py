from fastload.cli import main

main()
