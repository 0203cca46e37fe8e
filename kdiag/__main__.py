from kdiag.cli import main

main()
