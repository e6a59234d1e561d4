"""Pull mode: a node fetches its spec from the driver's spec server and converges itself.

`_tokens` are the provisioning tokens, `_tls` the server certificate and its fingerprint
pin, `_client` the node's pinned HTTPS client, `_report` what nodes report back.

One re-export per line (`X as X` marks it public for linters), so modules added alongside
add their own lines without touching anyone else's.
"""

from ._client import HttpStatusError as HttpStatusError
from ._client import PinMismatch as PinMismatch
from ._client import PullClient as PullClient
from ._client import PullError as PullError
from ._report import NodeReport as NodeReport
from ._report import ReportStatus as ReportStatus
from ._tls import client_context as client_context
from ._tls import fingerprint as fingerprint
from ._tls import generate_certificate as generate_certificate
from ._tls import load_or_create_certificate as load_or_create_certificate
from ._tls import normalize_fingerprint as normalize_fingerprint
from ._tls import server_context as server_context
from ._tokeninspect import TokenInspection as TokenInspection
from ._tokeninspect import inspect_token as inspect_token
from ._tokens import DEFAULT_TOKEN_TTL as DEFAULT_TOKEN_TTL
from ._tokens import NON_HEX_KEY_HINT as NON_HEX_KEY_HINT
from ._tokens import TokenClaims as TokenClaims
from ._tokens import TokenRefused as TokenRefused
from ._tokens import check_token as check_token
from ._tokens import looks_like_provisioning_token as looks_like_provisioning_token
from ._tokens import mint_token as mint_token
from ._tokens import signing_key_is_hex as signing_key_is_hex
