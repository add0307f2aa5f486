"""What the editor and the review list show, as plain data (the JSON routes and the pages both
call these), and opening a review from two documents."""

from __future__ import annotations

from aligner.pipeline import align_documents
from service.config import Settings
from service.documents import encoder_for, read_pair
from service.review.model import Reviews, review_from_alignment, summary


def review_data(reviews: Reviews, review_id: str) -> dict:
    """Everything the editor shows: the review's state, its name and version, counts."""
    info, review = reviews.load(review_id)
    return {
        "id": info.id,
        "name": info.name,
        "origin": info.origin,
        "version": info.version,
        "min_score": info.min_score,
        "created_at": info.created_at,
        "updated_at": info.updated_at,
        "finished_at": info.finished_at,
        "finished_by": info.finished_by,
        "owner": info.owner,
        "summary": summary(review, info.min_score),
        "history": reviews.history(review_id),
        **review.to_json(),
    }


def review_list_data(reviews: Reviews, limit: int = 100) -> dict:
    """The reviews, most recently changed first (the list route and page)."""
    rows = [vars(row) for row in reviews.list(limit)]
    return {"reviews": [{k: v for k, v in row.items() if k != "snapshot_version"} for row in rows]}


def open_review(
    reviews: Reviews, settings: Settings, zh: tuple[bytes, str], en: tuple[bytes, str],
    *, mode: str, name: str, min_score: float, origin: str, owner: str = "",
) -> str:
    """Align two documents (within the alignment limits of ``/align``) and store the result
    as a new review; its id."""
    (zh_doc, _), (en_doc, _) = read_pair(settings, zh, en)
    result = align_documents(zh_doc, en_doc, mode=mode, encoder=encoder_for(settings))
    review = review_from_alignment(zh_doc, en_doc, result)
    name = name or zh_doc.symbol or en_doc.symbol or zh[1]
    return reviews.create(name, review, origin=origin, min_score=min_score, owner=owner)
