#pragma once
// Kept for includes written before the SDK moved to hearth/sdk/.
#include "hearth/sdk/plugin.h"
