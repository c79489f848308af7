from mixvit.cli import main

main()
