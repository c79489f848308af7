from scimix.cli import main

main()
