#pragma once
// The whole C++ plugin SDK (docs/plugin-sdk.md).
#include "hearth/sdk/context.h"
#include "hearth/sdk/events.h"
#include "hearth/sdk/plugin.h"
#include "hearth/sdk/status.h"
