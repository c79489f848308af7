from realmix.cli import main

main()
