from mixshare.cli import main

main()
