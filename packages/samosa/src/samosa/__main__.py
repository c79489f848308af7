from samosa.cli import main

main()
