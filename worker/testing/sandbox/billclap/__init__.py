"""The BillClap sandbox: its app (`app`), its books (`books`) and how it totals (`totals`)."""
