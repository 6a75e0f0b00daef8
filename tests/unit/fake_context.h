#pragma once
// The plugin test fake is part of the SDK (hearth/sdk/fake_context.h).
#include "hearth/sdk/fake_context.h"
