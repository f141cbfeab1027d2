"""API v1 schemas of experiments."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..api.schemas import Text
from ..ml.settings import PRESETS
from ..models import Arm, ExperimentStatus
from .service import DEFAULT_SHARE, OUTCOMES, SHARE_RANGE


class ExperimentStartSchema(ma.Schema):
    challenger = Text(
        required=True,
        validate=validate.Length(min=1, max=160),
        metadata={"description": "The challenger version: `name:version` (or `name:alias`)"},
    )
    preset = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(sorted(PRESETS)),
        metadata={"description": "The challenger's settings; null: the version's own"},
    )
    share = fields.Float(
        load_default=DEFAULT_SHARE,
        validate=validate.Range(min=SHARE_RANGE[0], max=SHARE_RANGE[1]),
        metadata={"description": "Share of documents the challenger writes for"},
    )
    auto_promote = fields.Boolean(
        load_default=False,
        metadata={"description": "Make the challenger production as soon as the rule says better"},
    )
    confirm = fields.Boolean(
        load_default=False, metadata={"description": "Must be true: starting is confirmed"}
    )


class ConfirmSchema(ma.Schema):
    confirm = fields.Boolean(
        load_default=False, metadata={"description": "Must be true: the action is confirmed"}
    )


class EstimateSchema(ma.Schema):
    value = fields.Float(required=True, allow_none=True)
    low = fields.Float(required=True, allow_none=True)
    high = fields.Float(required=True, allow_none=True)


class DecisionFigureSchema(ma.Schema):
    decision = fields.String(required=True)
    count = fields.Integer(required=True)
    share = fields.Nested(EstimateSchema, required=True)


class ArmSchema(ma.Schema):
    """One side's figures, each with its 95% interval for one reading."""

    arm = fields.String(required=True, validate=validate.OneOf([a.value for a in Arm]))
    label = fields.String(required=True)
    written = fields.Integer(required=True)
    waiting = fields.Integer(required=True, metadata={"description": "Texts not written yet"})
    reviews = fields.Integer(required=True)
    decisions = fields.List(fields.Nested(DecisionFigureSchema), required=True)
    kept = fields.Nested(EstimateSchema, required=True, metadata={"description": "Mean kept share"})
    edit_distance = fields.Nested(
        EstimateSchema, required=True, metadata={"description": "Median edit distance"}
    )
    seconds_to_decision = fields.Nested(
        EstimateSchema, required=True, metadata={"description": "Median seconds to decision"}
    )


class IntervalSchema(ma.Schema):
    estimate = fields.Float(required=True)
    low = fields.Float(required=True)
    high = fields.Float(required=True)


class VerdictSchema(ma.Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    message = fields.String(required=True)
    kept = fields.Nested(
        IntervalSchema,
        required=True,
        metadata={"description": "Challenger minus champion, kept share: always-valid 95%"},
    )
    rejections = fields.Nested(
        IntervalSchema,
        required=True,
        metadata={"description": "Challenger minus champion, rejection rate: always-valid 95%"},
    )
    more_reviews = fields.Integer(required=True, allow_none=True)


class ExperimentSchema(ma.Schema):
    """Dumps an Experiment."""

    id = fields.Integer(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf([s.value for s in ExperimentStatus])
    )
    champion = fields.Method("champion_label", required=True)
    challenger = fields.Method("challenger_label", required=True)
    share = fields.Float(required=True)
    auto_promote = fields.Boolean(required=True)
    verdict = fields.String(required=True, allow_none=True)
    ended_because = fields.String(required=True, allow_none=True)
    started_by = fields.String(required=True, attribute="started_by_label")
    started_at = fields.DateTime(required=True)
    ended_at = fields.DateTime(required=True, allow_none=True)

    def champion_label(self, experiment) -> str:
        return experiment.arm_label(Arm.CHAMPION)

    def challenger_label(self, experiment) -> str:
        return experiment.arm_label(Arm.CHALLENGER)


class ExperimentListSchema(ma.Schema):
    items = fields.List(fields.Nested(ExperimentSchema), required=True)


class ExperimentResultsSchema(ma.Schema):
    """An experiment with its results, as its page shows them (dumps service.Results)."""

    experiment = fields.Nested(ExperimentSchema, required=True)
    arms = fields.List(fields.Nested(ArmSchema), required=True)
    decision = fields.Nested(
        VerdictSchema,
        required=True,
        attribute="verdict",
        metadata={"description": "What the decision rule says now"},
    )
