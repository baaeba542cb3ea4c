"""The script ``respop dashboard`` serves (``streamlit run``), shipped with the package.

Streamlit runs its script with "magic" on: a bare string in the script is shown on the page.
The board's module ``respop.boards.app`` documents its constants with such strings, so it must be
imported, never run as the script itself; this file (and ``dashboards/app.py``) only imports it.
"""

from respop.boards.app import main

main()
