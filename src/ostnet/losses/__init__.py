"""Training losses (paper Sec. 3.4, Eqs. 6-10, App. B), kept outside the networks."""

from ostnet.losses.equivariance import EquivarianceTerms, equivariance_loss, random_tps_for_samples
from ostnet.losses.keypoint_distance import keypoint_distance_loss
from ostnet.losses.objective import LossBatch, LossTerms, Objective
from ostnet.losses.perceptual import ImagePyramid, PerceptualLoss
from ostnet.losses.vgg import Vgg19Features, VggFeatures, build_vgg, build_vgg19, default_vgg_path

__all__ = [
    "EquivarianceTerms",
    "ImagePyramid",
    "LossBatch",
    "LossTerms",
    "Objective",
    "PerceptualLoss",
    "Vgg19Features",
    "VggFeatures",
    "build_vgg",
    "build_vgg19",
    "default_vgg_path",
    "equivariance_loss",
    "keypoint_distance_loss",
    "random_tps_for_samples",
]
