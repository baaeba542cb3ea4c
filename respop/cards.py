"""The model card's two parts: what a clinician reads, then the technical details in a folded
HTML ``<details>`` block (the Markdown inside it, between blank lines, is rendered as Markdown).

The card is written by the prediction (:func:`respop.strata.prediction.PredictionReport.model_card`),
stored as text in the ``model_cards`` table, and cut here by the boards (the Streamlit board shows
the two parts in two folded boxes): a text format shared by two layers that may not import each
other, so it lives in the base layer.
"""

from __future__ import annotations

TECHNICAL_OPEN = "<details>\n<summary>Détails techniques</summary>"
"""Where the card's technical part starts (an HTML ``<details>`` block, folded; blank lines
around its Markdown so that it is rendered as Markdown inside)."""

TECHNICAL_CLOSE = "</details>"


def split_card(card: str) -> tuple[str, str | None]:
    """The card's plain part and its technical part (the Markdown inside the ``<details>`` block;
    None when there is none): to show the second in its own folded box."""
    if TECHNICAL_OPEN not in card:
        return card, None
    plain, rest = card.split(TECHNICAL_OPEN, 1)
    return plain.rstrip() + "\n", rest.replace(TECHNICAL_CLOSE, "").strip() + "\n"
