"""``AtRisk``: a creator's buyers likely to churn, with the reason, and coupons sent to them.

The churn model is trained on the platform's own history by ``stagepass insight
train-churn`` (``train``): features of every buyer ``horizon_days`` ago, labelled by
whether they did anything since. It is saved under the data dir and loaded at start;
until it exists the at-risk list answers ``409 model_not_trained``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from pathlib import Path
from typing import Any, Optional

import numpy as np
from sqlalchemy import select

from core.cpu import off_loop
from core.timeutil import utcnow
from paywall.accounts import UserView
from paywall.catalog import Catalog
from paywall.db import Database
from core.access import Refusal
from paywall.models import Order, Room, User

from .churn import ChurnModel, rows
from .history import churn_features, churn_labels
from .models import CouponOffer
from .reports import SALES

__all__ = ["AtRisk"]

log = logging.getLogger("stagepass.insight")
COUPON_DAYS = 30


class AtRisk:
    def __init__(self, db: Database, catalog: Catalog, model_path: Path, horizon_days: float = 60.0,
                 threshold: float = 0.5) -> None:
        self.db = db
        self.catalog = catalog
        self.model_path = model_path
        self.horizon_days = horizon_days
        self.threshold = threshold
        self.model = ChurnModel.load(model_path)
        self._loaded = self._stamp()

    def _stamp(self) -> Optional[float]:
        return self.model_path.stat().st_mtime if self.model_path.exists() else None

    def _current(self) -> ChurnModel:
        """The model, reloaded when ``stagepass insight train-churn`` saved a new one."""
        stamp = self._stamp()
        if stamp != self._loaded:
            self.model, self._loaded = ChurnModel.load(self.model_path), stamp
        return self.model

    async def train(self, now: Optional[dt.datetime] = None) -> dict[str, Any]:
        """Fit on the buyers of ``horizon_days`` ago and what they did since; save."""
        cutoff = (now or utcnow()) - dt.timedelta(days=self.horizon_days)
        features = await churn_features(self.db, cutoff)
        labels = await churn_labels(self.db, cutoff, self.horizon_days, features)
        users = sorted(features)
        X, y = rows([features[u] for u in users]), np.array([labels[u] for u in users])
        try:
            model = await off_loop(lambda: ChurnModel().fit(X, y))
        except ValueError as exc:
            raise Refusal(409, "not_enough_history", f"{len(users)} buyers before {cutoff:%Y-%m-%d}: {exc}") from None
        await off_loop(lambda: model.save(self.model_path))
        self.model, self._loaded = model, self._stamp()
        log.info("churn model trained on %d buyers (%d churned)", len(users), int(y.sum()))
        return {"buyers": len(users), "churned": int(y.sum()), "cutoff": cutoff.isoformat(),
                "coefficients": model.coefficients()}

    async def _buyers(self, creator: UserView) -> dict[int, list[str]]:
        async with self.db() as s:
            found: dict[int, list[str]] = {}
            for user_id, slug in await s.execute(
                    select(Order.user_id, Room.slug).join(Room, Room.id == Order.room_id)
                    .where(Room.creator_id == creator.id, Order.status == "paid", Order.product.in_(SALES))
                    .distinct().order_by(Room.slug)):
                found.setdefault(user_id, []).append(slug)
        return found

    async def buyers(self, creator: UserView, limit: int = 100) -> list[dict[str, Any]]:
        """The creator's buyers at risk (risk >= ``threshold``), riskiest first."""
        if creator.role not in ("creator", "admin"):
            raise Refusal(403, "not_a_creator", "only creators have buyers")
        model = self._current()
        if not model.trained:
            raise Refusal(409, "model_not_trained", "no churn model yet: run `stagepass insight train-churn`")
        buyers = await self._buyers(creator)
        features = await churn_features(self.db, utcnow(), buyers)
        users = sorted(features)
        if not users:
            return []
        X = rows([features[u] for u in users])
        risk, reasons = model.risk(X), model.reasons(X)
        async with self.db() as s:
            names = dict((await s.execute(select(User.id, User.display_name).where(User.id.in_(users)))).all())
        out = [{"user_id": u, "name": names.get(u, ""), "risk": round(float(r), 3), "reason": why, "rooms": buyers[u]}
               for u, r, why in zip(users, risk, reasons) if r >= self.threshold]
        return sorted(out, key=lambda b: -b["risk"])[:limit]

    async def send_coupon(self, creator: UserView, user_id: int, body: dict) -> dict[str, Any]:
        """A single-use percent coupon on one of the creator's rooms, offered to one buyer."""
        slug, percent = body.get("room"), body.get("percent")
        if not isinstance(slug, str):
            raise Refusal(400, "invalid_room", "room: the slug of one of your rooms")
        if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 100:
            raise Refusal(400, "invalid_percent", "percent: 1 to 100")
        if user_id not in await self._buyers(creator):
            raise Refusal(404, "buyer_not_found", "no such buyer of your rooms")
        code = "COME-BACK-" + secrets.token_hex(4).upper()
        expires = (utcnow() + dt.timedelta(days=COUPON_DAYS)).isoformat()
        coupon = await self.catalog.add_coupon(creator, slug, {"code": code, "kind": "percent", "value": percent,
                                                               "max_uses": 1, "expires_at": expires})
        room = await self.catalog.require(slug)
        async with self.db() as s:
            s.add(CouponOffer(user_id=user_id, room_id=room.id, code=coupon["code"], percent=percent))
            await s.commit()
        log.info("creator %d offered a %d %% coupon on room %s to buyer %d", creator.id, percent, slug, user_id)
        return {"room": slug, "code": coupon["code"], "percent": percent, "expires_at": expires}

    async def offers(self, user: UserView) -> list[dict[str, Any]]:
        """The coupons creators offered this viewer."""
        async with self.db() as s:
            found = await s.execute(select(CouponOffer, Room.slug, Room.title).join(Room, Room.id == CouponOffer.room_id)
                                    .where(CouponOffer.user_id == user.id).order_by(CouponOffer.created_at.desc()))
            return [{"room": slug, "title": title, "code": o.code, "percent": o.percent,
                     "offered_at": o.created_at.isoformat()} for o, slug, title in found]
