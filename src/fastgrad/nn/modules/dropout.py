"""Channel-wise dropout: Dropout1d and Dropout2d zero whole channels in training; AlphaDropout and
FeatureAlphaDropout keep selu's mean and variance."""
from fastgrad.nn import functional as F
from fastgrad.nn.modules.linear import Dropout


class Dropout1d(Dropout):
    def forward(self, input):
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    def forward(self, input):
        return F.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    def forward(self, input):
        return F.alpha_dropout(input, self.p, self.training)


class FeatureAlphaDropout(Dropout):
    def forward(self, input):
        return F.feature_alpha_dropout(input, self.p, self.training)
