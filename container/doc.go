// Package container reads the SageMaker Processing platform contract
// (/opt/ml/config/resourceconfig.json, /opt/ml/config/processingjobconfig.json
// and the environment) into a plain Job, and holds the image recipe.
package container
