"""Campaign reports: the figures read from the analytics marts (`queries`), as tables of
display text (`figures`), as charts (`charts`) and as one self-contained HTML file (`html`)."""
