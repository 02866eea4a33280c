"""Files handed to users: CSV and Excel made safe to open in a spreadsheet (``formats``)."""
