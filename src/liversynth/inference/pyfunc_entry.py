"""MLflow models-from-code entry: the file MLflow runs to build the liversynth pyfunc model (no pickle)."""
from mlflow.models import set_model

from liversynth.inference.pyfunc import LiversynthModel

set_model(LiversynthModel())
