"""BillClap: the adapter (`adapter`), its request mapping (`mapping`) and how its answers
become outcomes (`answers`)."""
