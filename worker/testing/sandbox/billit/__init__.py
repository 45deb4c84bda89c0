"""The Billit sandbox: its app (`app`), its books (`books`) and its validation rules (`rules`)."""
