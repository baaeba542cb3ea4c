from respop.cli import main

main()
