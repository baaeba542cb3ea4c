"""The board of the réunions cliniques: streamlit run dashboards/app.py -- territories/demo.toml"""
from respop.boards.app import main
main()
