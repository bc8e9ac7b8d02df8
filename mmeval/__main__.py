from mmeval.cli import main

main()
