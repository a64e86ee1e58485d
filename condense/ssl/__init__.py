"""Self-supervised encoders as artifacts: `condense ssl` trains Barlow Twins on the unlabeled training split
(resumable) and saves a network file with role ``ssl``, the target model of KRR-ST."""
from ..checkpoint import check_start, checkpoint_path
from .barlow import RANGES, SSLConfig, barlow_twins_loss
from .training import rebuild_command, train_ssl
from .views import ViewConfig, two_views

__all__ = ["RANGES", "SSLConfig", "ViewConfig", "barlow_twins_loss", "check_start", "checkpoint_path",
           "rebuild_command", "train_ssl", "two_views"]
