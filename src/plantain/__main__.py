from plantain.cli import main

main()
