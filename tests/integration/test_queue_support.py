from support.outbound import *  # noqa: F403  moved: import from support.outbound
from support.peermta import *  # noqa: F403  moved: import from support.peermta
from support.testca import *  # noqa: F403  moved: import from support.testca
