"""placeholder: calculators of this family are being ported"""

from __future__ import annotations
