/* SPDX-License-Identifier: MIT */
/* stub: being written */
#include "macro.h"
