"""What the boards show: French labels and number formats (:mod:`respop.boards.labels`) and the
figures (:mod:`respop.boards.figures`, matplotlib Figures with no display) shared by the Streamlit
boards and the meeting dossier. They read the results store's rows only: aggregated counts, with
masked counts and rates as null."""
