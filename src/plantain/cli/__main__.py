from plantain.cli.main import main

main()
