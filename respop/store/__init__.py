"""The results store (issue 7): what may leave the pipeline. Today: disclosure control."""
