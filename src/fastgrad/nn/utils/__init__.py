from fastgrad.nn.utils.clip_grad import clip_grad_norm_, clip_grad_norm, clip_grad_value_
from fastgrad.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from fastgrad.nn.utils import clip_grad, convert_parameters, rnn  # noqa: F401
