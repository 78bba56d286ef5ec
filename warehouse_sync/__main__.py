from warehouse_sync.cli import main

main()
