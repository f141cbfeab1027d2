"""SQLAlchemy models, one module per aggregate."""

from .api import ApiLimits, ApiToken, GenerationJob
from .audit import AuditEvent, record_event
from .documents import (
    Decision,
    Document,
    MachineText,
    MachineTextStatus,
    Review,
    Revision,
    RevisionOrigin,
)
from .experiments import Arm, Experiment, ExperimentStatus
from .mlmodels import ModelAlias, ModelEvaluation, ModelVersion
from .model_tasks import ModelTask, ModelTaskKind, ModelTaskStatus
from .training import TrainingRun, TrainingStatus
from .users import LifecycleError, LoginSession, Role, User, UserStatus

__all__ = [
    "ApiLimits",
    "ApiToken",
    "Arm",
    "AuditEvent",
    "Decision",
    "Document",
    "Experiment",
    "ExperimentStatus",
    "GenerationJob",
    "LifecycleError",
    "LoginSession",
    "MachineText",
    "MachineTextStatus",
    "ModelAlias",
    "ModelEvaluation",
    "ModelTask",
    "ModelTaskKind",
    "ModelTaskStatus",
    "ModelVersion",
    "Review",
    "Revision",
    "RevisionOrigin",
    "Role",
    "TrainingRun",
    "TrainingStatus",
    "User",
    "UserStatus",
    "record_event",
]
