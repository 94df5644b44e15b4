from fastgrad.nn.modules.module import Module
from fastgrad.nn.modules.container import Sequential, ModuleList, ModuleDict
from fastgrad.nn.modules.parameter_containers import ParameterList, ParameterDict
from fastgrad.nn.modules.linear import (Linear, Bilinear, Identity, Flatten, Unflatten, Dropout,
                                      Embedding)
from fastgrad.nn.modules.padding import (ZeroPad1d, ZeroPad2d, ZeroPad3d, ConstantPad1d,
                                         ConstantPad2d, ConstantPad3d, ReflectionPad1d,
                                         ReflectionPad2d, ReflectionPad3d, ReplicationPad1d,
                                         ReplicationPad2d, ReplicationPad3d, CircularPad1d,
                                         CircularPad2d, CircularPad3d)
from fastgrad.nn.modules.normalization import (LayerNorm, RMSNorm, BatchNorm1d, BatchNorm2d,
                                               GroupNorm, InstanceNorm1d, InstanceNorm2d)
from fastgrad.nn.modules.dropout import (Dropout1d, Dropout2d, AlphaDropout,
                                       FeatureAlphaDropout)
from fastgrad.nn.modules.upsampling import (Upsample, UpsamplingNearest2d, UpsamplingBilinear2d,
                                          PixelShuffle, PixelUnshuffle, ChannelShuffle)
from fastgrad.nn.modules.activation import (ReLU, LeakyReLU, GELU, ELU, SiLU, Sigmoid, Tanh,
                                            Softplus, Softmax, LogSoftmax, Softmin, Softmax2d,
                                            Hardtanh, ReLU6, SELU, CELU, GLU, Hardsigmoid,
                                            Hardswish, Mish, Softsign, Tanhshrink, LogSigmoid,
                                            Threshold, Hardshrink, Softshrink, PReLU, RReLU)
from fastgrad.nn.modules.loss import (MSELoss, L1Loss, SmoothL1Loss, HuberLoss, CrossEntropyLoss,
                                      NLLLoss, BCELoss, BCEWithLogitsLoss, KLDivLoss,
                                      SoftMarginLoss, MarginRankingLoss, HingeEmbeddingLoss,
                                      CosineEmbeddingLoss, MultiLabelSoftMarginLoss,
                                      PoissonNLLLoss, GaussianNLLLoss, TripletMarginLoss,
                                      MultiMarginLoss)
from fastgrad.nn.modules.distance import PairwiseDistance, CosineSimilarity
from fastgrad.nn.modules.rnn import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell
from fastgrad.nn.modules.conv import (Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d, Unfold,
                                      Fold)
from fastgrad.nn.modules.pooling import (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d,
                                         AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
                                         AdaptiveMaxPool2d)
from fastgrad.nn.modules import pixelshuffle, sparse  # noqa: F401  (PyTorch's module paths)
from fastgrad.nn.modules.transformer import (MultiheadAttention, TransformerEncoderLayer,
                                             TransformerEncoder, TransformerDecoderLayer,
                                             TransformerDecoder, Transformer)
