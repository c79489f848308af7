from guidedmix.cli import main

main()
