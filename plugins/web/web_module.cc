// The web module's entry point; the front door itself is in the hearth_web library.

#include "hearth/plugin.h"
#include "web_plugin.h"

HEARTH_PLUGIN(hearth::web::WebPlugin, "web", "1.0.0", hearth::web::WebPlugin::configKeys(),
              hearth::web::WebPlugin::configKeyCount())
