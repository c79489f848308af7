from mixmo.cli import main

main()
